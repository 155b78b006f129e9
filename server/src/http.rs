//! The HTTP API for machines and scripts, under `/api/v1`, plus the operator's `/healthz`,
//! `/readyz` and `/metrics`. Every route module
//! exposes `router()`; this is the one place that merges them.

mod accounts;
pub mod auth;
mod error;
mod events;
mod flags;
pub mod headers;
mod ofrep;
pub mod operations;
pub mod panic;
mod reports;
mod rollouts;
mod sign_in;
mod webhooks;

pub use error::ApiError;

use crate::flags::Flags;
use crate::metrics::Metrics;
use crate::service::Rollouts;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;

/// What the API handlers share: one `Arc`, so handing it to a request is one count (every
/// request clones it, and a clone of each service it holds cost a fifth of a flag evaluation).
#[derive(Clone)]
pub struct ApiState(Arc<Shared>);

impl ApiState {
    pub fn new(shared: Shared) -> ApiState {
        ApiState(Arc::new(shared))
    }
}

impl std::ops::Deref for ApiState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The services and settings behind [`ApiState`].
pub struct Shared {
    pub rollouts: Rollouts,
    pub flags: Arc<Flags>,
    pub metrics: Metrics,
    pub store: crate::store::Store,
    pub auth: crate::auth::Auth,
    pub live: Arc<crate::live::Live>,
    pub webhooks: crate::webhooks::Webhooks,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: crate::net::IpRanges,
    /// This process's own figures, for `/metrics` and `/readyz`.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// How often the guard loop ticks, for `/readyz`.
    pub guard_interval: std::time::Duration,
    /// Ends the event streams when the server stops.
    pub stopping: crate::live::Stopping,
}

/// All API routes; unknown `/api` paths answer with a JSON 404 rather than an HTML page.
pub fn router(state: ApiState) -> Router {
    operations::router()
        .nest(
            "/api/v1",
            rollouts::router()
                .merge(flags::router())
                .merge(events::router())
                .merge(accounts::router())
                .merge(webhooks::router())
                .merge(reports::router())
                .route("/openapi.yaml", get(openapi))
                .fallback(not_found),
        )
        .merge(ofrep::router())
        .merge(sign_in::router())
        .merge(reports::pages())
        .merge(events::pages())
        .merge(rollouts::pages())
        .with_state(state)
}

/// The API's OpenAPI 3.1 description, kept beside the code it describes.
pub(crate) const OPENAPI: &str = include_str!("../api/openapi.yaml");

async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

async fn not_found() -> ApiError {
    ApiError(app::error::AppError::not_found("API route"))
}
