//! The webhook admin API: add, list and remove webhooks, and read each one's delivery log.

use super::{ApiError, ApiState};
use app::domain::access::Principal;
use app::domain::webhook::Event;
use app::error::AppError;
use app::model::{DeliveryView, Issued, WebhookView};
use app::services::WebhookService;
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
    Ok(Json(state.webhooks.webhooks(0).await?.into_iter().map(|log| log.webhook).collect()))
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
    let events = new
        .events
        .iter()
        .map(|name| {
            Event::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
                AppError::invalid("events", format!("`{name}` is not an event (one of {})", known.join(", ")))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let issued = state.webhooks.create_webhook(&new.url, &events, &new.description, &principal.actor()).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

async fn remove(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.webhooks.remove_webhook(id, &principal.actor()).await?;
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
    Ok(Json(state.webhooks.deliveries(id, page.limit.unwrap_or(50)).await?))
}
