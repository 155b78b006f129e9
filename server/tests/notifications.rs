//! What Rampart tells and is told: signed webhooks with retries and a delivery log; CI test
//! results that clear a stage's suite blocker; user complaints whose rising rate asks for review.

mod support;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{ADMIN_PASSWORD, TestApp};

/// A webhook receiver on a real socket: records every request and answers 500 to the first
/// `failures` of them.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    failures: Arc<Mutex<usize>>,
    /// How long it takes to answer, and when each request arrived.
    delay: Duration,
    arrived: Arc<Mutex<Vec<std::time::Instant>>>,
}

impl Receiver {
    async fn start(failures: usize) -> (Receiver, String) {
        Receiver::start_slow(failures, Duration::ZERO).await
    }

    /// Like [`Receiver::start`], answering each request only after `delay`.
    async fn start_slow(failures: usize, delay: Duration) -> (Receiver, String) {
        let receiver = Receiver { failures: Arc::new(Mutex::new(failures)), delay, ..Default::default() };
        let state = receiver.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, receiver_app(state)).await });
        (receiver, url)
    }

    /// The same receiver behind TLS, presenting `certificate` (for `localhost`): its URL is
    /// `https://localhost:…/hook`.
    async fn start_tls(certificate: &rcgen::CertifiedKey) -> (Receiver, String) {
        use tokio_rustls::rustls;
        let receiver = Receiver::default();
        let app = receiver_app(receiver.clone());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certificate.key_pair.serialize_der().into());
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certificate.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://localhost:{}/hook", listener.local_addr().unwrap().port());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing to serve.
                    let Ok(stream) = acceptor.accept(stream).await else { return };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                });
            }
        });
        (receiver, url)
    }

    /// Like [`Receiver::start`], on a given port (one a receiver that was down used).
    async fn start_on(port: u16) -> Receiver {
        let receiver = Receiver::default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("the receiver's port again");
        let app = receiver_app(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn bodies(&self) -> Vec<Value> {
        self.received.lock().unwrap().iter().map(|(_, b)| serde_json::from_slice(b).unwrap()).collect()
    }

    /// Waits (up to 5 s) until `count` requests arrived.
    async fn wait_for(&self, count: usize) {
        for _ in 0..500 {
            if self.received.lock().unwrap().len() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{count} webhook requests expected, got {:?}", self.bodies());
    }
}

/// The receiver's one route: records the request, fails while `failures` lasts.
fn receiver_app(state: Receiver) -> axum::Router {
    axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                state.arrived.lock().unwrap().push(std::time::Instant::now());
                state.received.lock().unwrap().push((headers, body));
                tokio::time::sleep(state.delay).await;
                let mut failures = state.failures.lock().unwrap();
                if *failures > 0 {
                    *failures -= 1;
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    )
}

async fn add_webhook(app: &TestApp, url: &str, events: Value) -> (i64, String) {
    let admin = app.sign_in("admin", ADMIN_PASSWORD).await;
    let response = admin.post(app.url("/api/v1/webhooks")).json(&json!({ "url": url, "events": events })).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    (body["item"]["id"].as_i64().unwrap(), body["secret"].as_str().unwrap().to_string())
}

/// The delivery log once its newest delivery has been tried (up to 5 s).
async fn settled(app: &TestApp, webhook: i64) -> Vec<Value> {
    for _ in 0..500 {
        let log = deliveries(app, webhook).await;
        if log.first().is_some_and(|d| d["state"] != "pending") {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("webhook {webhook}'s delivery was never tried: {:?}", deliveries(app, webhook).await)
}

async fn deliveries(app: &TestApp, webhook: i64) -> Vec<Value> {
    let admin = app.sign_in("admin", ADMIN_PASSWORD).await;
    let response = admin.get(app.url(&format!("/api/v1/webhooks/{webhook}/deliveries"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn webhooks_are_signed_filtered_and_sent_once_per_change(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (receiver, url) = Receiver::start(0).await;
    let (hook, secret) = add_webhook(&app, &url, json!(["approval_needed", "stage_changed", "rolled_back"])).await;
    assert!(secret.starts_with("whsec_"));

    app.command(json!({ "command": "start" })).await;
    app.go_to_stage(1).await;
    app.command(json!({ "command": "pause" })).await; // not subscribed: nothing sent
    let (status, _) = app.command(json!({ "command": "roll_back", "target": "off", "reason": "provider incident" })).await;
    assert_eq!(status, 200);
    receiver.wait_for(4).await;
    // Delivered means done: rounds now, and after any lease would have run out, send nothing.
    assert_eq!(app.webhooks.tick(app.now()).await.unwrap(), vec![]);
    let events: Vec<String> = receiver.bodies().iter().map(|b| b["event"].as_str().unwrap().to_string()).collect();
    assert_eq!(events, ["stage_changed", "approval_needed", "stage_changed", "rolled_back"]);

    let (headers, body) = receiver.received.lock().unwrap()[3].clone();
    assert_eq!(headers["rampart-event"], "rolled_back");
    assert_eq!(headers["content-type"], "application/json");
    let signature = headers["rampart-signature"].to_str().unwrap();
    let t: i64 = signature.split(',').next().unwrap().strip_prefix("t=").unwrap().parse().unwrap();
    assert_eq!(signature, server::webhooks::signature(&secret, t, &body), "HMAC-SHA256 of the timestamp and the exact body");
    assert_eq!(t, app.now().millis() / 1000);
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["rollout"]["id"], 1);
    assert_eq!(payload["state"]["status"], "rolled_back");
    assert_eq!(payload["state"]["flag"], json!({ "enabled": false, "percentage": 0 }));
    assert_eq!(payload["actor"], support::TEST_ACTOR);
    assert_eq!(payload["reason"], "provider incident");
    assert!(payload["text"].as_str().unwrap().starts_with("Async upload rollout: Rolled back from stage 1"), "{payload}");

    let log = deliveries(&app, hook).await;
    assert_eq!(log.len(), 4);
    assert!(log.iter().all(|d| d["state"] == "delivered" && d["attempts"] == 1 && d["last_status"] == 204), "{log:?}");
    app.advance_clock_hours(1);
    assert_eq!(app.webhooks.tick(app.now()).await.unwrap(), vec![]);
    assert_eq!(receiver.bodies().len(), 4);
}

#[sqlx::test(migrations = "../migrations")]
async fn webhooks_to_this_machine_or_a_private_network_are_refused_unless_allowed(pool: PgPool) {
    // Security review 19.5: no allowance configured, as in production by default.
    let app = TestApp::spawn_with(pool.clone(), |_| {}).await;
    let admin = app.sign_in("admin", ADMIN_PASSWORD).await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
        "http://2130706433/hook",
    ] {
        let response = admin.post(app.url("/api/v1/webhooks")).json(&json!({ "url": url, "events": [] })).send().await.unwrap();
        assert_eq!(response.status(), 422, "{url}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["field"], "url", "{body}");
        assert!(body["message"].as_str().unwrap().contains("refused"), "{url}: {body}");
    }
    // A webhook stored when its address was allowed (or whose name now resolves to this
    // machine) is checked again when sent: nothing reaches the receiver, and the log says why.
    let (receiver, url) = Receiver::start(0).await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO webhooks (url, secret, events, description, created_by, created_at)
         VALUES ($1, 'whsec_test', '{}', '', 'test', now()) RETURNING id",
    )
    .bind(url.replace("127.0.0.1", "localhost"))
    .fetch_one(&pool)
    .await
    .unwrap();
    app.command(json!({ "command": "start" })).await;
    app.webhooks.tick(app.now()).await.unwrap();
    let log = deliveries(&app, id).await;
    assert!(!log.is_empty() && log.iter().all(|d| d["state"] != "delivered"), "{log:?}");
    assert!(log[0]["last_error"].as_str().unwrap().contains("127.0.0.1 is a loopback address (this machine): refused"), "{log:?}");
    assert!(receiver.bodies().is_empty());
}

/// Security review, issue 19 (17): webhook signing secrets sat in the database in plain text,
/// readable by anyone with a backup. With keys configured they are sealed (ChaCha20-Poly1305),
/// deliveries are still signed with the secret the admin was shown, and `rampart secrets reseal`
/// moves every secret to the first key (rotation).
#[sqlx::test(migrations = "../migrations")]
async fn webhook_secrets_are_sealed_at_rest_and_deliveries_still_signed(pool: PgPool) {
    const OLD_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const NEW_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    let app = TestApp::spawn_with(pool.clone(), |config| {
        config.webhook_allow = server::egress::Egress::parse("127.0.0.0/8").unwrap();
        config.secret_keys = server::sealed::SecretKeys::parse(OLD_KEY).unwrap();
    })
    .await;
    let (receiver, url) = Receiver::start(0).await;
    let (_, secret) = add_webhook(&app, &url, json!(["stage_changed"])).await;
    let stored: String = sqlx::query_scalar("SELECT secret FROM webhooks").fetch_one(&pool).await.unwrap();
    assert!(stored.starts_with("sealed:v1:") && !stored.contains(&secret[6..]), "stored as {stored}");
    app.command(json!({ "command": "start" })).await;
    receiver.wait_for(1).await;
    let (headers, body) = receiver.received.lock().unwrap()[0].clone();
    let signature = headers["rampart-signature"].to_str().unwrap();
    let t: i64 = signature.split(',').next().unwrap().strip_prefix("t=").unwrap().parse().unwrap();
    assert_eq!(signature, server::webhooks::signature(&secret, t, &body), "signed with the secret the admin was shown");

    // Rotation: the new key first, the old one still listed; reseal moves every secret over.
    let keys = format!("{NEW_KEY},{OLD_KEY}");
    let (ok, out) = support::rampart_with(&pool, &["secrets", "reseal"], &[("RAMPART_SECRET_KEYS", &keys)]);
    assert!(ok && out.contains("1 webhook secret(s) sealed with the first key"), "{out}");
    let resealed: String = sqlx::query_scalar("SELECT secret FROM webhooks").fetch_one(&pool).await.unwrap();
    assert_ne!(resealed, stored);
    let new_only = server::sealed::SecretKeys::parse(NEW_KEY).unwrap();
    assert_eq!(new_only.open(&resealed).unwrap(), secret, "the new key alone opens it now");
    assert!(server::sealed::SecretKeys::parse(OLD_KEY).unwrap().open(&resealed).is_err());
}

/// Security review, issue 19 (follow-up): the webhook client was built without TLS, so no
/// https receiver — every chat and paging service — was ever reached. Receivers are verified
/// against the public roots and the operator's own CA (`RAMPART_WEBHOOK_CA`); a certificate
/// neither vouches for is refused, and the delivery log says so.
#[sqlx::test(migrations = "../migrations")]
async fn webhooks_reach_https_receivers_whose_certificate_is_trusted(pool: PgPool) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key_pair, &ca, &ca_key).unwrap();
    let (trusted, trusted_url) = Receiver::start_tls(&rcgen::CertifiedKey { cert, key_pair }).await;
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (untrusted, untrusted_url) = Receiver::start_tls(&stranger).await;

    let ca_file = std::env::temp_dir().join(format!("rampart-test-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let roots = server::egress::Roots::read(ca_file.to_str().unwrap()).unwrap();
    let app = TestApp::spawn_with(pool, |config| {
        config.webhook_allow = server::egress::Egress::parse("127.0.0.0/8").unwrap();
        config.webhook_ca = roots;
    })
    .await;
    let (good, secret) = add_webhook(&app, &trusted_url, json!(["stage_changed"])).await;
    let (bad, _) = add_webhook(&app, &untrusted_url, json!(["stage_changed"])).await;
    app.command(json!({ "command": "start" })).await;
    trusted.wait_for(1).await;
    let (headers, body) = trusted.received.lock().unwrap()[0].clone();
    let signature = headers["rampart-signature"].to_str().unwrap();
    let t: i64 = signature.split(',').next().unwrap().strip_prefix("t=").unwrap().parse().unwrap();
    assert_eq!(signature, server::webhooks::signature(&secret, t, &body));
    // The receiver answered; the dispatcher records the attempt just after.
    assert_eq!(settled(&app, good).await[0]["state"], "delivered");

    // The background dispatcher may have tried it already; a round here makes sure it is tried.
    app.webhooks.tick(app.now()).await.unwrap();
    let log = settled(&app, bad).await;
    assert_eq!((log[0]["state"].as_str(), log[0]["last_status"].as_u64()), (Some("retrying"), None), "{log:?}");
    let error = log[0]["last_error"].as_str().unwrap();
    assert!(error.contains("certificate"), "the log says why: {error}");
    assert!(untrusted.bodies().is_empty(), "nothing sent to a receiver whose certificate no one vouches for");

    // A file that holds no certificate is refused at start, naming the setting.
    std::fs::write(&ca_file, "not a certificate").unwrap();
    let error = server::egress::Roots::read(ca_file.to_str().unwrap()).unwrap_err();
    assert!(error.contains("no PEM certificate"), "{error}");
    std::fs::remove_file(&ca_file).unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failing_receiver_is_retried_with_backoff_and_every_attempt_is_logged(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (receiver, url) = Receiver::start(2).await;
    let (hook, _) = add_webhook(&app, &url, json!([])).await;
    let (gone, _) = add_webhook(&app, "http://127.0.0.1:9/never", json!([])).await;
    let admin = app.sign_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(admin.delete(app.url(&format!("/api/v1/webhooks/{gone}"))).send().await.unwrap().status(), 204);

    app.command(json!({ "command": "start" })).await;
    receiver.wait_for(1).await;
    let log = deliveries(&app, hook).await;
    assert_eq!(
        (log[0]["state"].as_str(), log[0]["attempts"].as_u64(), log[0]["last_status"].as_u64()),
        (Some("retrying"), Some(1), Some(500))
    );
    assert_eq!(log[0]["next_attempt_at"].as_i64(), Some(app.now().millis() + 10_000), "first retry after 10 s");

    // The server's clock moves past each wait; the dispatcher tries again.
    app.advance_clock_minutes(1);
    app.webhooks.tick(app.now()).await.unwrap();
    receiver.wait_for(2).await;
    assert_eq!(deliveries(&app, hook).await[0]["next_attempt_at"].as_i64(), Some(app.now().millis() + 30_000), "then after 30 s");
    app.advance_clock_minutes(1);
    app.webhooks.tick(app.now()).await.unwrap();
    receiver.wait_for(3).await;
    let log = deliveries(&app, hook).await;
    assert_eq!(
        (log[0]["state"].as_str(), log[0]["attempts"].as_u64(), log[0]["last_status"].as_u64()),
        (Some("delivered"), Some(3), Some(204))
    );
    let ids: Vec<String> =
        receiver.received.lock().unwrap().iter().map(|(h, _)| h["rampart-delivery"].to_str().unwrap().to_string()).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "a retry is the same delivery: {ids:?}");
    assert!(deliveries(&app, gone).await.is_empty(), "a removed webhook gets nothing");

    // A receiver that never answers well is given up on after the last retry.
    let (dead, _) = add_webhook(&app, "http://127.0.0.1:9/closed", json!(["stage_changed"])).await;
    app.go_to_stage(1).await;
    for _ in 0..10 {
        app.webhooks.tick(app.now()).await.unwrap();
        app.advance_clock_hours(3);
    }
    let log = deliveries(&app, dead).await;
    assert_eq!((log[0]["state"].as_str(), log[0]["attempts"].as_u64()), (Some("failed"), Some(8)), "{log:?}");
    assert_eq!(log[0]["last_error"], "could not connect");

    // Bad input names the field.
    let admin = app.sign_in("admin", ADMIN_PASSWORD).await;
    let response = admin.post(app.url("/api/v1/webhooks")).json(&json!({ "url": "ftp://x", "events": [] })).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["field"], "url");
    let response = admin.post(app.url("/api/v1/webhooks")).json(&json!({ "url": url, "events": ["stage_moved"] })).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["field"], "events");
    assert!(body["message"].as_str().unwrap().contains("stage_moved"), "{body}");
}

/// Fault suite (issue 23): the receiver is down while several changes happen, then comes back.
/// Nothing is lost — every change is delivered once it is up — nothing is sent twice once
/// acknowledged, and the outbox drains to empty.
/// Fault suite: a slow receiver (3 s to answer) holds back no other: in the same round the fast
/// one has its delivery at once; each is delivered once, and a later round sends nothing more.
#[sqlx::test(migrations = "../migrations")]
async fn a_slow_receiver_delays_no_other_and_each_gets_its_delivery_once(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    // The slow one is added first, so its delivery is claimed first.
    let (slow, slow_url) = Receiver::start_slow(0, Duration::from_secs(3)).await;
    let (fast, fast_url) = Receiver::start(0).await;
    let (slow_hook, _) = add_webhook(&app, &slow_url, json!([])).await;
    let (fast_hook, _) = add_webhook(&app, &fast_url, json!([])).await;
    assert_eq!(app.command(json!({ "command": "start" })).await.0, 200);
    let started = std::time::Instant::now();
    let round = app.webhooks.tick(app.now()).await.unwrap();
    assert_eq!(round.len(), 2, "{round:?}");
    let fast_at = fast.arrived.lock().unwrap()[0].duration_since(started);
    let slow_at = slow.arrived.lock().unwrap()[0].duration_since(started);
    assert!(
        fast_at < Duration::from_secs(1),
        "the fast receiver waited {fast_at:?} behind the slow one (which got its request after {slow_at:?})"
    );
    for hook in [slow_hook, fast_hook] {
        let log = settled(&app, hook).await;
        assert_eq!((log.len(), log[0]["state"].as_str()), (1, Some("delivered")), "{log:?}");
    }
    app.advance_clock_minutes(10);
    app.webhooks.tick(app.now()).await.unwrap();
    assert_eq!((slow.received.lock().unwrap().len(), fast.received.lock().unwrap().len()), (1, 1), "each once");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_receiver_that_was_down_gets_every_change_once_when_it_returns(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (hook, _) = add_webhook(&app, &format!("http://127.0.0.1:{port}/hook"), json!([])).await;
    // Down: nothing listens on the port. Three changes (the start and two stage moves), each
    // announced, tried and refused.
    app.go_to_stage(2).await;
    app.webhooks.tick(app.now()).await.unwrap();
    let log = deliveries(&app, hook).await;
    assert!(!log.is_empty() && log.iter().all(|d| d["state"] == "retrying" && d["last_error"] == "could not connect"), "{log:?}");
    let changes = log.len();
    assert!(changes >= 2, "several changes announced while it was down: {log:?}");
    let store = server::store::Store::new(pool.clone());
    assert_eq!(store.outbox().await.unwrap().pending as usize, changes);

    // Back: the next rounds deliver every one of them, once.
    let receiver = Receiver::start_on(port).await;
    for _ in 0..3 {
        app.advance_clock_minutes(1);
        app.webhooks.tick(app.now()).await.unwrap();
    }
    receiver.wait_for(changes).await;
    let log = settled(&app, hook).await;
    assert!(log.iter().all(|d| d["state"] == "delivered"), "{log:?}");
    let ids: Vec<String> =
        receiver.received.lock().unwrap().iter().map(|(h, _)| h["rampart-delivery"].to_str().unwrap().to_string()).collect();
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (changes, changes), "each delivery once: {ids:?}");
    // More rounds send nothing again; the outbox is empty.
    for _ in 0..3 {
        app.advance_clock_minutes(10);
        app.webhooks.tick(app.now()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.received.lock().unwrap().len(), changes);
    assert_eq!(store.outbox().await.unwrap(), server::store::Outbox { pending: 0, failed: 0, oldest_pending_seconds: 0.0 });
}

#[sqlx::test(migrations = "../migrations")]
async fn ci_test_results_clear_the_suite_blocker_only_when_all_pass(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.command(json!({ "command": "start" })).await;
    let suite_blocker = |room: &Value| room["blockers"].as_array().unwrap().iter().find(|b| b["kind"] == "test_suite_not_passed").cloned();
    assert_eq!(suite_blocker(&app.room().await).unwrap()["passed"], Value::Null);

    let (status, body) = app.post("/api/v1/rollouts/1/test-results", json!({ "suite": "Phase 1", "passed": 15, "failed": 1 })).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["stage"].as_u64(), body["reported_by"].as_str()), (Some(0), Some(support::TEST_ACTOR)));
    let blocker = suite_blocker(&app.room().await).unwrap();
    assert_eq!((blocker["passed"].as_u64(), blocker["failed"].as_u64()), (Some(15), Some(1)));

    let (status, _) = app.post("/api/v1/rollouts/1/test-results", json!({ "suite": "Phase 1", "passed": 16 })).await;
    assert_eq!(status, 201);
    assert_eq!(suite_blocker(&app.room().await), None, "the newest run counts");
    let audit = &app.room().await["audit"][0];
    assert_eq!(audit["summary"], "Phase 1 tests for stage 0: 16 passed, 0 failed");

    let (status, body) = app.post("/api/v1/rollouts/1/test-results", json!({ "suite": "Phase 9", "passed": 1 })).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("suite")));
    assert!(body["message"].as_str().unwrap().contains("it requires “Phase 1”"), "{body}");
    let (status, body) = app.post("/api/v1/rollouts/1/test-results", json!({ "suite": "Phase 1", "passed": -3 })).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app.post("/api/v1/rollouts/1/test-results", json!({ "suite": "Phase 1", "passed": 1, "stage": 9 })).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("stage")));
    assert_eq!(app.get_json("/api/v1/rollouts/1/test-results").await.as_array().unwrap().len(), 2);
}

/// Issue 21: CI posts its JUnit XML report as it is (pytest's here, with a failure, an error and
/// a skip); the run's counts gate the stage like the JSON form, the failed cases are kept with
/// their messages, and a malformed report is refused with the line and column of the fault.
#[sqlx::test(migrations = "../migrations")]
async fn a_junit_report_gates_the_suite_and_keeps_its_failed_cases(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.command(json!({ "command": "start" })).await;
    let post = |body: Vec<u8>, query: &str| {
        app.client
            .post(app.url(&format!("/api/v1/rollouts/1/test-runs{query}")))
            .header("content-type", "application/xml")
            .body(body)
            .send()
    };
    let report = include_str!("fixtures/junit/pytest.xml");
    let response = post(report.into(), "?suite=Phase%201&url=https%3A%2F%2Fci.example%2Frun%2F7").await.unwrap();
    assert_eq!(response.status(), 201);
    let run: Value = response.json().await.unwrap();
    assert_eq!((run["passed"].as_u64(), run["failed"].as_u64(), run["skipped"].as_u64()), (Some(1), Some(2), Some(1)), "{run}");
    assert_eq!(
        (run["format"].as_str(), run["duration_ms"].as_u64(), run["url"].as_str()),
        (Some("junit"), Some(50), Some("https://ci.example/run/7"))
    );
    let blocker = app.room().await["blockers"].as_array().unwrap().iter().find(|b| b["kind"] == "test_suite_not_passed").cloned().unwrap();
    assert_eq!((blocker["passed"].as_u64(), blocker["failed"].as_u64()), (Some(1), Some(2)), "{blocker}");

    let listed = app.get_json("/api/v1/rollouts/1/test-runs").await;
    let failures = listed[0]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0]["name"], "test_large_pdf_is_rejected_with_a_clear_message");
    assert!(failures[0]["message"].as_str().unwrap().starts_with("AssertionError: the user sees <the wrong> & unclear message"));
    assert_eq!((failures[1]["kind"].as_str(), failures[1]["classname"].as_str()), (Some("error"), Some("test_upload")));
    assert_eq!(listed, app.get_json("/api/v1/rollouts/1/test-results").await, "one list, two names");
    assert!(app.room().await["audit"][0]["summary"].as_str().unwrap().ends_with("1 passed, 2 failed, 1 skipped"));

    // A report the stage does not require is refused by suite, as in the JSON form.
    let response = post(report.into(), "").await.unwrap();
    assert_eq!(response.status(), 422, "its own name, “pytest tests”, is no suite of the stage");
    // Cut short: 400, with the line and column where reading stopped.
    let cut = report.replace("</testsuite></testsuites>", "");
    let response = post(cut.into(), "?suite=Phase%201").await.unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!((error["error"].as_str(), error["field"].as_str()), (Some("malformed"), Some("body")), "{error}");
    assert!(error["line"].as_u64().unwrap() >= 1 && error["column"].as_u64().unwrap() >= 1, "{error}");
    assert!(error["message"].as_str().unwrap().contains("line"), "{error}");
    let response = post(b"<testsuite>\n  <testcase/>\n</testsuite>".to_vec(), "?suite=Phase%201").await.unwrap();
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        (error["line"].as_u64(), error["message"].as_str()),
        (Some(2), Some("body: line 2, column 14: a <testcase> without a name"))
    );
    let response = post(b"<testsuite>\n\xff</testsuite>".to_vec(), "?suite=Phase%201").await.unwrap();
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        (error["line"].as_u64(), error["column"].as_u64(), error["message"].as_str()),
        (Some(2), Some(1), Some("body: line 2, column 1: not UTF-8 text"))
    );
    assert_eq!(app.get_json("/api/v1/rollouts/1/test-runs").await.as_array().unwrap().len(), 1, "nothing refused was stored");

    // The JSON form may carry failed cases too; a bad one is refused by field.
    let (status, body) = app
        .post(
            "/api/v1/rollouts/1/test-runs",
            json!({ "suite": "Phase 1", "passed": 15, "failed": 1, "failures": [{ "name": "upload\u{0}", "message": "boom" }] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["failures"][0]["name"], "upload\u{fffd}", "a NUL is stored as a replacement character");
    let (status, body) = app
        .post(
            "/api/v1/rollouts/1/test-runs",
            json!({ "suite": "Phase 1", "passed": 15, "failed": 1, "failures": [{ "name": "x", "kind": "oops" }] }),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("failures.kind")));

    // What a CI step runs: `rampart test-results` posts Playwright's report with a token.
    let secret = support::all_scopes_token(&app.pool, "ci", app.now()).await;
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["test-results", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/junit/playwright.xml")])
            .args(["--suite", "Phase 1", "--link", "https://ci.example/run/9"])
            .env("RAMPART_URL", base)
            .env("RAMPART_TOKEN", secret)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("3 tests: 1 passed (0 on a retry), 1 failed, 1 skipped"), "{stdout}");
    assert!(stdout.contains("failure upload.spec.ts async upload › a large PDF shows the limit: the message names the limit"), "{stdout}");
    assert!(stdout.contains("for stage 0"), "{stdout}");
    let newest = &app.get_json("/api/v1/rollouts/1/test-runs").await[0];
    assert_eq!(
        (newest["format"].as_str(), newest["url"].as_str(), newest["reported_by"].as_str()),
        (Some("junit"), Some("https://ci.example/run/9"), Some("token:ci"))
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn rising_complaints_raise_a_review_that_blocks_advance(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (receiver, url) = Receiver::start(0).await;
    add_webhook(&app, &url, json!(["alert"])).await;
    let mut model = server::simulate::Model::new(5, 1);
    app.go_to_stage(1).await;
    app.advance_clock_minutes(1);
    app.simulate(&mut model, 900, 100, &[]).await;

    // One complaint an hour ago, then a few now: the rate has more than doubled.
    let hour_ago = app.now().millis() - 3_000_000;
    let (status, body) = app.post("/api/v1/rollouts/1/complaints", json!({ "count": 1, "at": hour_ago - 1_000_000 })).await;
    assert_eq!(status, 201, "{body}");
    app.post("/api/v1/rollouts/1/complaints", json!({ "count": 2, "source": "support desk", "note": "uploads stuck at 99%" })).await;
    assert!(app.guard.tick_now(app.now()).await.unwrap().is_empty(), "two complaints are not a trend");
    app.post("/api/v1/rollouts/1/complaints", json!({ "source": "support desk" })).await;
    let actions = app.guard.tick_now(app.now()).await.unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");

    let room = app.room().await;
    let alert = &room["alerts"][0];
    assert_eq!(alert["kind"], "complaint_rate_rising");
    assert!(alert["message"].as_str().unwrap().contains("complaints rising: 3 in the last hour"), "{alert}");
    assert!(room["blockers"].as_array().unwrap().iter().any(|b| b["kind"] == "alert_open"));
    assert_eq!(room["audit"].as_array().unwrap().iter().filter(|e| e["action"] == "complaint").count(), 3);
    receiver.wait_for(1).await;
    assert_eq!(receiver.bodies()[0]["event"], "alert");

    let (status, body) = app.post("/api/v1/rollouts/1/complaints", json!({ "count": 0 })).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("count")));
    let (status, body) = app.post("/api/v1/rollouts/1/complaints", json!({ "at": app.now().millis() + 3_600_000 })).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("at")));
}
