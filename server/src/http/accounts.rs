//! Who am I, and the admin API for users, tokens and share links (under `/api/v1`).

use super::{ApiError, ApiState};
use app::domain::access::{Principal, Role, Scope};
use app::model::{Issued, ShareLinkView, TokenView, UserView};
use app::services::AccountService;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/me", get(me))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", patch(update_user))
        .route("/users/{id}/password", post(set_password))
        .route("/users/{id}/unlock", post(unlock_user))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/share-links", get(list_share_links).post(create_share_link))
        .route("/share-links/{id}", delete(revoke_share_link))
}

/// `GET /api/v1/me`: who the server thinks is calling.
async fn me(Extension(principal): Extension<Principal>) -> Json<Principal> {
    Json(principal)
}

async fn list_users(State(state): State<ApiState>) -> Result<Json<Vec<UserView>>, ApiError> {
    Ok(Json(state.auth.users().await?))
}

#[derive(Deserialize)]
pub struct NewUser {
    name: String,
    role: Role,
    /// Leave out to have a password generated and returned once.
    #[serde(default)]
    password: Option<String>,
}

async fn create_user(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<Issued<UserView>>), ApiError> {
    let Json(new) = body?;
    let issued = state.auth.create_user(&new.name, new.role, new.password.as_deref(), &principal.actor()).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[derive(Deserialize)]
pub struct UserChange {
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    disabled: Option<bool>,
}

async fn update_user(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    body: Result<Json<UserChange>, JsonRejection>,
) -> Result<Json<UserView>, ApiError> {
    let Json(change) = body?;
    Ok(Json(state.auth.update_user(id, change.role, change.disabled, &principal).await?))
}

#[derive(Deserialize)]
pub struct NewPassword {
    password: String,
}

async fn set_password(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    body: Result<Json<NewPassword>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(new) = body?;
    state.auth.set_password(id, &new.password, &principal.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/users/{id}/unlock`: forgets the account's failed sign-ins (audited).
async fn unlock_user(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.auth.unlock_user(id, &principal.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_tokens(State(state): State<ApiState>) -> Result<Json<Vec<TokenView>>, ApiError> {
    Ok(Json(state.auth.tokens().await?))
}

#[derive(Deserialize)]
pub struct NewToken {
    name: String,
    scopes: Vec<Scope>,
}

async fn create_token(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<Issued<TokenView>>), ApiError> {
    let Json(new) = body?;
    Ok((StatusCode::CREATED, Json(state.auth.create_token(&new.name, &new.scopes, &principal.actor()).await?)))
}

async fn revoke_token(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.auth.revoke_token(id, &principal.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_share_links(State(state): State<ApiState>) -> Result<Json<Vec<ShareLinkView>>, ApiError> {
    Ok(Json(state.auth.share_links().await?))
}

#[derive(Deserialize)]
pub struct NewShareLink {
    rollout_id: i64,
    label: String,
    #[serde(default = "default_share_hours")]
    valid_for_hours: i64,
}

fn default_share_hours() -> i64 {
    14 * 24
}

async fn create_share_link(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<NewShareLink>, JsonRejection>,
) -> Result<(StatusCode, Json<Issued<ShareLinkView>>), ApiError> {
    let Json(new) = body?;
    let issued = state.auth.create_share_link(new.rollout_id, &new.label, new.valid_for_hours, &principal.actor()).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

async fn revoke_share_link(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.auth.revoke_share_link(id, &principal.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
