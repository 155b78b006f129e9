//! The webhook admin API: add, list and remove webhooks, and read each one's delivery log.

use super::{ApiError, ApiState};
use crate::webhooks::Event;
use app::domain::access::Principal;
use app::error::AppError;
use app::model::{DeliveryView, Issued, WebhookView};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use serde::Deserialize;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", delete(remove))
        .route("/webhooks/{id}/deliveries", get(deliveries))
}

async fn list(State(state): State<ApiState>) -> Result<Json<Vec<WebhookView>>, ApiError> {
    Ok(Json(state.store.webhooks().await.map_err(AppError::from)?))
}

#[derive(Deserialize)]
pub struct NewWebhook {
    url: String,
    /// Event names; absent or empty means every event.
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    description: String,
}

/// Adds a webhook; the answer carries its signing secret, shown this once.
async fn create(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<NewWebhook>, JsonRejection>,
) -> Result<(StatusCode, Json<Issued<WebhookView>>), ApiError> {
    let Json(new) = body?;
    let url = reqwest::Url::parse(new.url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| AppError::invalid("url", format!("`{}` is not an http(s) URL", new.url.trim())))?;
    let mut events = Vec::new();
    for name in &new.events {
        let event = Event::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
            AppError::invalid("events", format!("`{name}` is not an event (one of {})", known.join(", ")))
        })?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    let secret = format!("whsec_{}", crate::auth::new_secret());
    let now = state.rollouts.now();
    let item = state.store.create_webhook(url.as_str(), &secret, &events, new.description.trim(), &principal.actor(), now).await;
    Ok((StatusCode::CREATED, Json(Issued { item: item.map_err(AppError::from)?, secret })))
}

async fn remove(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.store.disable_webhook(id, &principal.actor(), state.rollouts.now()).await.map_err(AppError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct Page {
    limit: Option<i64>,
}

/// The webhook's newest deliveries (default 50, at most 500), each with its latest attempt.
async fn deliveries(
    State(state): State<ApiState>,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let limit = page.limit.unwrap_or(50).clamp(1, 500);
    Ok(Json(state.store.deliveries(id, limit).await.map_err(AppError::from)?))
}
