//! What an operator's tools ask of a running replica: `/healthz` (the process answers and
//! reaches its database), `/readyz` (it can do its work: database reachable, migrations
//! current, guard loop ticking), and `/metrics` (Rampart's own figures for Prometheus), plus
//! the middleware that counts every request for them.

use super::ApiState;
use crate::telemetry::{Gauges, Telemetry};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn router() -> Router<ApiState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

async fn healthz(State(state): State<ApiState>) -> (StatusCode, &'static str) {
    match state.store.ping().await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(error) => {
            tracing::warn!(%error, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
        }
    }
}

/// One readiness check and what it found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    checks: Vec<Check>,
}

async fn readyz(State(state): State<ApiState>) -> Response {
    let read = async { Ok::<_, crate::store::StoreError>((state.store.applied_migrations().await?, state.store.schema_floor().await?)) };
    let (database, migrations) = match read.await {
        Ok((applied, floor)) => {
            let expected: Vec<i64> = crate::db::MIGRATOR.iter().map(|m| m.version).collect();
            (Check { name: "database", ok: true, detail: "reachable".into() }, migrations_check(&applied, &expected, floor))
        }
        Err(error) => {
            tracing::warn!(%error, "readiness: database unreachable");
            let unknown = Check { name: "migrations", ok: false, detail: "unknown: the database is unreachable".into() };
            // The cause is in the log: the probe is public.
            (Check { name: "database", ok: false, detail: "unreachable".into() }, unknown)
        }
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let guard = guard_check(state.telemetry.last_tick_ms(), now_ms, state.telemetry.uptime(), state.guard_interval);
    let checks = vec![database, migrations, guard];
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, checks })).into_response()
}

/// Current when every migration this binary knows is applied. Newer ones (a newer replica
/// migrated during a rolling upgrade) are fine while the schema's `floor` (the oldest binary
/// that may run on it, by the newest migration it knows) is not past this binary: a running
/// replica learns here, not only at its next start, that a release raised it.
pub fn migrations_check(applied: &[i64], expected: &[i64], floor: i64) -> Check {
    let missing: Vec<String> = expected.iter().filter(|v| !applied.contains(v)).map(i64::to_string).collect();
    let newer = applied.iter().filter(|v| !expected.contains(v)).count();
    let known = expected.iter().max().copied().unwrap_or(0);
    match (missing.is_empty(), newer) {
        _ if floor > known => Check {
            name: "migrations",
            ok: false,
            detail: format!("the schema needs a binary that knows migration {floor}; this one knows up to {known}"),
        },
        (false, _) => Check { name: "migrations", ok: false, detail: format!("not applied: {}", missing.join(", ")) },
        (true, 0) => Check { name: "migrations", ok: true, detail: format!("{} applied, all current", applied.len()) },
        (true, newer) => {
            Check { name: "migrations", ok: true, detail: format!("{} applied; {newer} newer than this binary", applied.len()) }
        }
    }
}

/// The guard loop is ticking when its last tick (judged here, or skipped because another
/// replica judges) is at most three intervals old, with 15 s of slack for a slow database.
/// Before the first tick, a process younger than that limit is given the benefit of the doubt.
pub fn guard_check(last_tick_ms: Option<i64>, now_ms: i64, uptime: Duration, interval: Duration) -> Check {
    let limit = interval * 3 + Duration::from_secs(15);
    let name = "guard";
    match last_tick_ms {
        Some(ms) => {
            let age = Duration::from_millis((now_ms - ms).max(0) as u64);
            let ok = age <= limit;
            let detail = if ok {
                format!("last tick {:.1} s ago", age.as_secs_f64())
            } else {
                format!("no tick for {:.0} s (limit {} s)", age.as_secs_f64(), limit.as_secs())
            };
            Check { name, ok, detail }
        }
        None if uptime <= limit => Check { name, ok: true, detail: "starting: no tick yet".into() },
        None => Check { name, ok: false, detail: format!("no tick since the start {} s ago", uptime.as_secs()) },
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let (outbox, mut rollouts) = match tokio::try_join!(state.store.outbox(), state.store.rollout_gauges()) {
        Ok(read) => read,
        Err(error) => {
            tracing::warn!(%error, "metrics: could not read the store");
            return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], "database unreachable\n").into_response();
        }
    };
    // Each live rollout's current stage as its gates judge it; one that cannot be judged now is
    // left out of those families, never the page.
    for rollout in rollouts.iter_mut().filter(|r| matches!(r.status.as_str(), "running" | "paused" | "awaiting_approval")) {
        match state.rollouts.stage_figures(rollout.id).await {
            Ok(figures) => rollout.figures = figures,
            Err(error) => tracing::warn!(rollout = rollout.id, %error, "metrics: could not judge the rollout's stage"),
        }
    }
    let pool = state.store.pool();
    let gauges = Gauges {
        outbox_pending: outbox.pending,
        outbox_failed: outbox.failed,
        outbox_oldest_pending_seconds: outbox.oldest_pending_seconds,
        pool_size: pool.size(),
        pool_idle: pool.num_idle() as u32,
        pool_max: pool.options().get_max_connections(),
        flag_stream_clients: state.flags.watchers(),
        dashboard_stream_clients: state.live.watchers(),
        rollouts,
    };
    let page = state.telemetry.render(&gauges, chrono::Utc::now().timestamp_millis());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], page).into_response()
}

/// Counts the request and its latency under its route's template (`(static)` for files and
/// other requests no route matched, so the label stays bounded).
pub async fn record_request(State(telemetry): State<Arc<Telemetry>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(|| "(static)".to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    telemetry.record_request(&route, method.as_str(), response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(5);

    #[test]
    fn the_guard_is_ticking_while_its_last_tick_is_within_three_intervals_and_slack() {
        assert!(guard_check(Some(100_000), 129_000, Duration::from_secs(600), INTERVAL).ok);
        assert!(guard_check(Some(100_000), 130_000, Duration::from_secs(600), INTERVAL).ok, "30 s is the limit itself");
        let stale = guard_check(Some(100_000), 131_000, Duration::from_secs(600), INTERVAL);
        assert!(!stale.ok);
        assert_eq!(stale.detail, "no tick for 31 s (limit 30 s)");
    }

    #[test]
    fn a_young_process_is_ready_before_its_first_tick_and_an_old_one_is_not() {
        assert!(guard_check(None, 0, Duration::from_secs(10), INTERVAL).ok);
        assert!(!guard_check(None, 0, Duration::from_secs(31), INTERVAL).ok);
    }

    #[test]
    fn migrations_are_current_when_every_known_one_is_applied_even_with_newer_ones() {
        assert!(migrations_check(&[1, 2, 3], &[1, 2, 3], 1).ok);
        let newer = migrations_check(&[1, 2, 3, 4], &[1, 2, 3], 3);
        assert!(newer.ok);
        assert_eq!(newer.detail, "4 applied; 1 newer than this binary");
        let behind = migrations_check(&[1, 2], &[1, 2, 3, 4], 1);
        assert!(!behind.ok);
        assert_eq!(behind.detail, "not applied: 3, 4");
        let past = migrations_check(&[1, 2, 3, 4], &[1, 2, 3], 4);
        assert!(!past.ok, "a floor past this binary: it must be replaced");
        assert_eq!(past.detail, "the schema needs a binary that knows migration 4; this one knows up to 3");
    }
}
