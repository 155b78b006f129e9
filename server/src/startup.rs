//! Building and running the server: `build(config, listener, pool)` returns an [`Application`]
//! that tests run on port 0 and `main` runs until SIGTERM or Ctrl-C.

use crate::actors::SYSTEM_ACTOR;
use crate::auth::Auth;
use crate::clock::Clock;
use crate::config::ServeConfig;
use crate::flags::Flags;
use crate::guard::Guard;
use crate::http::{self, ApiState, Shared};
use crate::metrics::Metrics;
use crate::service::Rollouts;
use crate::store::Store;
use crate::webhooks::Dispatcher;
use anyhow::Context as _;
use app::domain::plan::{DEFAULT_PLAN_TOML, Plan};
use app::domain::units::{Span, Timestamp};
use app::services::Services;
use app::{App, shell};
use axum::Router;
use leptos::config::{Env, LeptosOptions};
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;

/// How long a stopping server waits for requests in flight before it exits anyway.
pub const SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Application {
    listener: TcpListener,
    router: Router,
    /// Ends the event streams when the server stops.
    stop: tokio::sync::watch::Sender<bool>,
    guard: Guard,
    webhooks: Dispatcher,
    /// The first admin's one-time set-password path, on a first start without a password.
    setup_link: Option<String>,
}

impl Application {
    /// The guard loop, for running a tick on demand.
    pub fn guard(&self) -> Guard {
        self.guard.clone()
    }

    /// The webhook dispatcher, for running a round on demand.
    pub fn webhooks(&self) -> Dispatcher {
        self.webhooks.clone()
    }

    /// The first admin's one-time set-password path (`/setup/…`), if this start made one.
    pub fn setup_link(&self) -> Option<String> {
        self.setup_link.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves; then stops accepting, ends the event streams (with a
    /// reconnect hint), and finishes the requests in flight — each batch and transition is one
    /// transaction, committed or not — for at most [`SHUTDOWN_LIMIT`].
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let stopping = Arc::new(tokio::sync::Notify::new());
        let (stop, signalled) = (self.stop, stopping.clone());
        let signal = async move {
            shutdown.await;
            stop.send_replace(true);
            signalled.notify_one();
        };
        // The peer address feeds sign-in rate limiting and the audit trail.
        let serve =
            axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(signal);
        tokio::select! {
            served = serve.into_future() => served,
            () = async { stopping.notified().await; tokio::time::sleep(SHUTDOWN_LIMIT).await } => {
                tracing::warn!(limit = ?SHUTDOWN_LIMIT, "requests still in flight at the shutdown limit; stopping anyway");
                Ok(())
            }
        }
    }
}

/// Loads the plan (the file given, or the built-in default), makes sure its rollout exists, and
/// assembles the routes.
pub async fn build(config: &ServeConfig, listener: TcpListener, pool: PgPool, clock: Clock) -> anyhow::Result<Application> {
    let store = Store::new(pool.clone());
    let (plan, source) = load_plan(config.plan.as_deref())?;
    ensure_rollout(&store, &plan, &source).await?;

    let telemetry = Arc::new(crate::telemetry::Telemetry::default());
    let (stop, stopping) = crate::live::Stopping::new();
    let live = Arc::new(crate::live::Live::default());
    let flags = Flags::start(store.clone(), live.clone()).await?;
    let retention = Span::from_secs(i64::from(config.retention_days) * 86_400);
    let metrics = Metrics::new(store.clone(), clock.clone(), retention)
        .reading_prometheus(config.prometheus_allow.clone())
        .reporting(telemetry.clone());
    let guard = Guard::new(store.clone(), metrics.clone(), clock.clone()).reporting(telemetry.clone());
    let metrics = metrics.notifying(guard.waker());
    metrics.spawn_folding();
    let guard_interval = std::time::Duration::from_secs(plan.guardrails.interval.secs().max(1) as u64);
    guard.clone().spawn(guard_interval);
    spawn_retention(store.clone(), clock.clone(), retention, telemetry.clone());
    if !config.secret_keys.is_configured() {
        tracing::warn!("RAMPART_SECRET_KEYS is not set: webhook signing secrets are stored in plain text (docs/security.md)");
    }
    let webhooks = Dispatcher::new(store.clone(), clock.clone(), config.egress(), config.secret_keys.clone());
    webhooks.clone().spawn();
    let auth = Auth::new(store.clone(), clock.clone(), Span::from_secs(i64::from(config.session_hours.max(1)) * 3600));
    let setup_link = auth.bootstrap_admin(config.admin_password.as_ref()).await?.map(|secret| format!("/setup/{}", secret.expose_secret()));
    if let Some(path) = &setup_link {
        // Printed once, on the terminal only (never logged); it works once, for a day.
        let addr = listener.local_addr()?;
        println!(
            "\nCreated the first account, `admin`. Open http://{addr}{path} within 24 hours to choose its password\n(the link works once; or set RAMPART_ADMIN_PASSWORD before the first start).\n"
        );
    } else if config.admin_password.is_some() {
        tracing::info!("RAMPART_ADMIN_PASSWORD ignored: accounts already exist");
    }
    let rollouts = Rollouts::new(store.clone(), metrics.clone(), clock.clone());
    let webhook_admin = crate::webhooks::Webhooks::new(store.clone(), clock.clone(), config.egress(), config.secret_keys.clone());
    let services =
        Services { rollouts: Arc::new(rollouts.clone()), accounts: Arc::new(auth.clone()), webhooks: Arc::new(webhook_admin.clone()) };
    let leptos_options = LeptosOptions::builder()
        .output_name("rampart")
        .site_root(config.site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .site_addr(listener.local_addr()?)
        .env(Env::PROD)
        .build();
    let routes = generate_route_list(App);
    let router = Router::new()
        .leptos_routes_with_context(&leptos_options, routes, move || provide_context(services.clone()), {
            let options = leptos_options.clone();
            move || page(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(page))
        .with_state(leptos_options)
        .merge(http::router(ApiState::new(Shared {
            rollouts,
            flags,
            metrics,
            store,
            auth: auth.clone(),
            live,
            webhooks: webhook_admin,
            trusted_proxies: config.trusted_proxies.clone(),
            telemetry: telemetry.clone(),
            guard_interval,
            stopping,
        })))
        .layer(axum::middleware::from_fn_with_state(Arc::new(auth), http::auth::authorize))
        // Outside the access check, so refused requests are counted too.
        .layer(axum::middleware::from_fn_with_state(telemetry, http::operations::record_request));
    Ok(Application { listener, router: harden(router, config.trusted_proxies.clone()), stop, guard, webhooks, setup_link })
}

/// The HTML document of every page, with its script policy.
fn page(options: LeptosOptions) -> impl leptos::prelude::IntoView {
    http::headers::set_page_policy();
    shell(options)
}

/// The layers every response passes through, outermost last: a panic anywhere inside becomes
/// a 500 with an incident id; pages, JSON and the WASM go out brotli- or gzip-compressed when
/// the client accepts it (event streams never are: they must flush each message); every
/// response carries the security headers; and first of all, a request's `X-Forwarded-Proto`
/// is dropped unless it came from one of `proxies`.
pub fn harden(router: Router, proxies: crate::net::IpRanges) -> Router {
    // The closure below is cloned per request: what it holds is one reference count.
    let proxies = Arc::new(proxies);
    router
        .layer(request_tracing())
        .layer(http::panic::layer())
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn(http::headers::security_headers))
        .layer(axum::middleware::from_fn(move |mut request: axum::extract::Request, next: axum::middleware::Next| {
            let peer = request.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
            crate::net::drop_untrusted_forwarding(request.headers_mut(), peer, &proxies);
            next.run(request)
        }))
}

/// A span per request, named by its route's template (`/share/{secret}`, never the URL: paths
/// and queries may carry secrets) and method, so whatever is logged while handling it says
/// which request; its end (status, latency) at debug level, a 5xx at error level.
fn request_tracing() -> tower_http::trace::TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    impl Fn(&axum::extract::Request) -> tracing::Span + Clone,
> {
    tower_http::trace::TraceLayer::new_for_http().make_span_with(|request: &axum::extract::Request| {
        let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("(no route)", |path| path.as_str());
        tracing::info_span!("request", method = %request.method(), route)
    })
}

/// Checks every setting that can be checked before a database is touched (the private cluster
/// created, the schema migrated, the plan's rollout made): the plan parses, and an admin
/// password, if given, meets the password rules. An empty `RAMPART_ADMIN_PASSWORD` counts as
/// unset, as for every other setting.
pub fn check_config(mut config: ServeConfig) -> anyhow::Result<ServeConfig> {
    load_plan(config.plan.as_deref())?;
    config.admin_password = config.admin_password.filter(|p| !p.expose_secret().is_empty());
    if let Some(password) = &config.admin_password {
        crate::auth::check_password_rules(password.expose_secret()).map_err(|e| anyhow::anyhow!("RAMPART_ADMIN_PASSWORD {e}"))?;
    }
    Ok(config)
}

/// Reads and validates a plan file, or the built-in default plan.
pub fn load_plan(path: Option<&Path>) -> anyhow::Result<(Plan, String)> {
    let source = match path {
        Some(path) => {
            // A plan is small: a file of gigabytes (chosen by mistake) is refused unread.
            let size = std::fs::metadata(path).with_context(|| format!("cannot read plan file {}", path.display()))?.len();
            anyhow::ensure!(
                size <= app::domain::plan::MAX_PLAN_BYTES as u64,
                "plan file {} is {size} bytes; a plan is at most {} bytes",
                path.display(),
                app::domain::plan::MAX_PLAN_BYTES
            );
            std::fs::read_to_string(path).with_context(|| format!("cannot read plan file {}", path.display()))?
        }
        None => DEFAULT_PLAN_TOML.to_string(),
    };
    let name = path.map_or_else(|| "built-in plan".to_string(), |p| p.display().to_string());
    let plan = Plan::from_toml(&source).map_err(|errors| {
        let lines: Vec<String> = errors.0.iter().map(|e| format!("  {name}: {e}")).collect();
        anyhow::anyhow!("the plan is invalid:\n{}", lines.join("\n"))
    })?;
    Ok((plan, source))
}

/// Stores the plan and, if no rollout drives its flag yet, creates one, so a new installation
/// opens on the plan's rollout at stage 0.
pub async fn ensure_rollout(store: &Store, plan: &Plan, source: &str) -> anyhow::Result<i64> {
    let plan_id = store.save_plan(plan, source).await?;
    if let Some(live) = store.live_rollouts(Some(&plan.flag.key)).await?.first() {
        return Ok(live.id);
    }
    let id = store.create_rollout(plan_id, plan, SYSTEM_ACTOR).await?;
    tracing::info!(rollout_id = id, plan = %plan.key, "created the rollout from the plan");
    Ok(id)
}

/// Drops raw events and finished webhook deliveries past retention, expired sessions and
/// day-old idempotency keys once an hour (and once at start), until the pool closes.
fn spawn_retention(store: Store, clock: Clock, retention: Span, telemetry: Arc<crate::telemetry::Telemetry>) {
    tokio::spawn(async move {
        let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = hourly.tick() => {}
                () = store.pool().close_event() => return,
            }
            let cutoff = Timestamp(clock().millis() - retention.millis());
            let partitions = match store.prune_events(cutoff).await {
                Ok(dropped) => {
                    if dropped > 0 {
                        tracing::info!(dropped, "dropped event partitions past retention");
                    }
                    Some(dropped as u64)
                }
                Err(error) => {
                    tracing::warn!(%error, "could not apply event retention");
                    None
                }
            };
            // Expired sessions and device cookies, and day-old idempotency keys.
            let purged = match store.purge_expired(clock()).await {
                Ok(purged) => {
                    tracing::debug!(?purged, "purged expired sessions, devices and idempotency keys");
                    Some(purged)
                }
                Err(error) => {
                    tracing::warn!(%error, "could not purge expired sessions, devices and idempotency keys");
                    None
                }
            };
            // Deliveries that finished before the cutoff (never one still due).
            let deliveries = match store.prune_deliveries(cutoff).await {
                Ok(pruned) => Some(pruned),
                Err(error) => {
                    tracing::warn!(%error, "could not apply webhook delivery retention");
                    None
                }
            };
            telemetry.record_retention(partitions, purged.map(|p| [p.sessions, p.idempotency_keys, p.trusted_devices]), deliveries);
        }
    });
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_admin_password_counts_as_unset_and_a_short_one_is_refused() {
        let with = |password: &str| ServeConfig { admin_password: Some(password.to_string().into()), ..ServeConfig::default() };
        assert!(check_config(with("")).unwrap().admin_password.is_none());
        assert!(check_config(with("twelve chars")).unwrap().admin_password.is_some());
        let error = check_config(with("eleven char")).unwrap_err().to_string();
        assert!(error.contains("RAMPART_ADMIN_PASSWORD") && error.contains("at least 12"), "{error}");
    }
}
