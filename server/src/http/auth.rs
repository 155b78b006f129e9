//! The gate every request passes: find who is calling, refuse cross-site mutations, apply the
//! route's access rule, and send people who are not signed in to the sign-in page. Also the
//! sign-in and sign-out forms, the `/share/{secret}` entry of share links, and the admin API
//! for users, tokens and share links.
//!
//! Every `/api/v1`, `/ofrep`, `/auth` and `/share` route must have a rule in [`rule`]; one
//! without is refused for everybody (deny by default). Server functions check their own
//! permission through the same [`app::domain::access::check`].

use super::{ApiError, ApiState};
use crate::auth::{Auth, SHARE_COOKIE, bearer_token, cookie, session_cookie, session_cookie_name};
use app::domain::access::{Permission, Principal, Role, Scope, check};
use app::error::AppError;
use app::model::{Issued, ShareLinkView, TokenView, UserView};
use app::services::AccountService;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Form, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Extension, Json, Router};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::net::SocketAddr;

/// What a route takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Anyone, signed in or not.
    Public,
    Needs(Permission),
    /// Depends on the command in the body; the handler checks `Command::permission`.
    PerCommand,
}

/// The access rule of every machine-facing route, by method and route pattern.
pub fn rule(method: &Method, route: &str) -> Option<Rule> {
    use Permission::*;
    use Rule::*;
    let m = method.as_str();
    Some(match (m, route) {
        ("GET", "/healthz" | "/readyz" | "/api/v1/openapi.yaml" | "/api/v1/me" | "/share/{secret}") => Public,
        // Stage, alerts and traffic of every rollout: what a viewer may read.
        ("GET", "/metrics") => Needs(ReadRollout),
        ("POST", "/auth/login" | "/auth/logout") => Public,
        // The link's secret is the credential; it works once.
        ("GET" | "POST", "/setup/{token}") => Public,
        (
            "GET",
            "/api/v1/rollouts/{id}" | "/api/v1/rollouts/{id}/live" | "/api/v1/rollouts/{id}/metrics" | "/api/v1/rollouts/{id}/baseline",
        ) => Needs(ReadRollout),
        ("POST", "/api/v1/rollouts/{id}/commands") => PerCommand,
        ("POST", "/api/v1/rollouts/{id}/checklist/{item}") => Needs(TickChecklist),
        ("POST", "/api/v1/rollouts/{id}/alerts/{alert}/acknowledge") => Needs(AcknowledgeAlert),
        ("POST", "/api/v1/rollouts/{id}/baseline") => Needs(CaptureBaseline),
        ("GET", "/api/v1/rollouts/{id}/test-results" | "/api/v1/rollouts/{id}/test-runs") => Needs(ReadRollout),
        ("POST", "/api/v1/rollouts/{id}/test-results" | "/api/v1/rollouts/{id}/test-runs") => Needs(ReportTests),
        ("POST", "/api/v1/rollouts/{id}/complaints") => Needs(ReportComplaints),
        ("POST", "/api/v1/events") => Needs(IngestEvents),
        (
            "GET",
            "/api/v1/flags" | "/api/v1/flags/events" | "/api/v1/flags/{key}" | "/api/v1/flags/{key}/evaluate" | "/api/v1/flags/{key}/env",
        ) => Needs(EvaluateFlags),
        ("POST", "/ofrep/v1/evaluate/flags/{key}" | "/ofrep/v1/evaluate/flags") | ("GET", "/ofrep/v1/configuration") => {
            Needs(EvaluateFlags)
        }
        ("GET" | "POST", "/api/v1/users")
        | ("PATCH", "/api/v1/users/{id}")
        | ("POST", "/api/v1/users/{id}/password" | "/api/v1/users/{id}/unlock") => Needs(ManageUsers),
        ("GET" | "POST", "/api/v1/tokens") | ("DELETE", "/api/v1/tokens/{id}") => Needs(ManageTokens),
        ("GET" | "POST", "/api/v1/share-links") | ("DELETE", "/api/v1/share-links/{id}") => Needs(ManageShareLinks),
        ("GET" | "POST", "/api/v1/webhooks") | ("DELETE", "/api/v1/webhooks/{id}") | ("GET", "/api/v1/webhooks/{id}/deliveries") => {
            Needs(ManageWebhooks)
        }
        _ => return None,
    })
}

/// Whether a route pattern belongs to the machine-facing API that [`rule`] must cover.
fn is_api_route(route: &str) -> bool {
    ["/api/v1/", "/ofrep/", "/auth/", "/share/", "/setup/", "/healthz", "/readyz", "/metrics"].iter().any(|p| route.starts_with(p))
}

/// Static files anyone may fetch.
fn is_asset(path: &str) -> bool {
    path.starts_with("/pkg/") || path.starts_with("/favicon")
}

/// Pages anyone may open without signing in (assets never get this far).
fn is_public_page(path: &str) -> bool {
    path == "/login"
}

/// The middleware: identifies the caller, puts the [`Principal`] into the request, and refuses
/// what it may not do.
pub async fn authorize(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    // HEAD is judged exactly as the GET it stands for.
    let method = if request.method() == Method::HEAD { Method::GET } else { request.method().clone() };
    // The WASM, scripts, styles and icons are public and need no database lookup.
    if method == Method::GET && is_asset(request.uri().path()) {
        return next.run(request).await;
    }
    let principal = match auth.resolve(request.headers()).await {
        Ok(p) => p,
        Err(e) => return ApiError(e).into_response(),
    };
    // Only a request the browser sends with our cookies (or a sign-in, which sets them) can be
    // forged by another site; tokens carry no ambient authority.
    let unsafe_method = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let headers = request.headers();
    let cookie_borne = session_cookie(headers).is_some() || cookie(headers, SHARE_COOKIE).is_some();
    let forgeable = unsafe_method && bearer_token(headers).is_none() && (cookie_borne || request.uri().path() == "/auth/login");
    if forgeable && let Err(why) = same_origin(headers) {
        tracing::warn!(path = %request.uri().path(), why, "refused a cross-site request");
        return ApiError(AppError::Forbidden { message: format!("cross-site request refused: {why}") }).into_response();
    }
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    if let Some(route) = route.as_deref().filter(|r| is_api_route(r)) {
        let allowed = match rule(&method, route) {
            Some(Rule::Public | Rule::PerCommand) => Ok(()),
            Some(Rule::Needs(permission)) => check(&principal, permission).map_err(AppError::from),
            None => {
                tracing::error!(%method, route, "no access rule for this route; refusing it");
                Err(AppError::Forbidden { message: format!("no access rule covers {method} {route}") })
            }
        };
        if let Err(e) = allowed {
            return ApiError(e).into_response();
        }
    } else if route.is_some() && method == Method::GET && !is_public_page(request.uri().path()) {
        // A page: people sign in first; a share link opens only its status page.
        let path = request.uri().path();
        let shared_status = matches!(principal, Principal::ShareLink { .. }) && path.starts_with("/status");
        let is_page = !path.starts_with("/api/");
        if is_page && !matches!(principal, Principal::User { .. }) && !shared_status {
            let next = request.uri().path_and_query().map_or("/".to_string(), |p| p.as_str().to_string());
            return Redirect::to(&format!("/login?next={}", encode_component(&next))).into_response();
        }
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// A state-changing request carried by cookies must come from Rampart's own pages: the
/// browser's Fetch Metadata says so, or its `Origin` (else `Referer`) names this host.
fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return if matches!(site, "same-origin" | "none") { Ok(()) } else { Err("the browser says it came from another site") };
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).ok_or("no Host header")?;
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .ok_or("no Origin or Referer header")?;
    let authority = origin.split("://").nth(1).unwrap_or("").split('/').next().unwrap_or("");
    if authority.eq_ignore_ascii_case(host) { Ok(()) } else { Err("its Origin is another site") }
}

fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sign-in, sign-out and share links: the browser-facing routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/share/{secret}", get(open_share_link))
        .route("/setup/{token}", get(setup_page).post(setup_password))
}

/// A small page of its own (no app, no script): the form of a one-time set-password link, or
/// why the link no longer works.
fn setup_html(status: StatusCode, body: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Rampart: choose a password</title><link rel=\"stylesheet\" href=\"/pkg/rampart.css\"></head>\
         <body><main class=\"login\"><h1>Rampart</h1>{body}</main></body></html>"
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

const LINK_GONE: &str =
    "<p class=\"error\" role=\"alert\">This link was used already or has expired. An admin can set a password from the admin page.</p>";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn setup_form(name: &str, problem: Option<&str>) -> String {
    let problem = problem.map_or_else(String::new, |p| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(p)));
    format!(
        "<p>Choose the password of `{}` (at least {} characters). This link works once.</p>{problem}\
         <form method=\"post\" class=\"action-form\"><label>Password <input name=\"password\" type=\"password\" autocomplete=\"new-password\" required></label>\
         <button type=\"submit\" class=\"primary\">Set the password and sign in</button></form>",
        escape(name),
        crate::auth::MIN_PASSWORD_LEN
    )
}

/// `GET /setup/{token}`: the form, while the link works; 410 after.
async fn setup_page(State(state): State<ApiState>, Path(token): Path<String>) -> Result<Response, ApiError> {
    Ok(match state.auth.setup_link_user(&token).await? {
        Some(name) => setup_html(StatusCode::OK, &setup_form(&name, None)),
        None => setup_html(StatusCode::GONE, LINK_GONE),
    })
}

#[derive(Deserialize)]
pub struct SetupForm {
    password: String,
}

/// `POST /setup/{token}`: sets the password (the usual rules), uses the link up, signs in.
async fn setup_password(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Result<Response, ApiError> {
    let address = client_address(&state, peer, &headers);
    let Some(name) = state.auth.setup_link_user(&token).await? else { return Ok(setup_html(StatusCode::GONE, LINK_GONE)) };
    match state.auth.use_setup_link(&token, &form.password, &address).await {
        Ok(Some(session)) => {
            tracing::info!(user = %session.name, %address, "password chosen through a set-up link");
            let cookie = set_cookie(session_cookie_name(&headers), session.id.expose_secret(), session.max_age_secs, &headers);
            Ok(([cookie], Redirect::to("/")).into_response())
        }
        Ok(None) => Ok(setup_html(StatusCode::GONE, LINK_GONE)),
        Err(AppError::Invalid { message, .. }) => Ok(setup_html(StatusCode::UNPROCESSABLE_ENTITY, &setup_form(&name, Some(&message)))),
        Err(other) => Err(ApiError(other)),
    }
}

/// Who am I, and the admin API for users, tokens and share links (under `/api/v1`).
pub fn api_router() -> Router<ApiState> {
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

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// Where to go after signing in: only a path on this site. Judged after percent-decoding
/// (once, as a browser would): a single `/` not followed by another, and no control character
/// or backslash anywhere (nor a raw blank) — browsers drop tabs and newlines, so `/<TAB>/host`
/// would otherwise reach another site, and CR LF would break the redirect.
fn safe_next(next: Option<&str>) -> &str {
    let Some(raw) = next else { return "/" };
    let Some(decoded) = percent_decode(raw) else { return "/" };
    // Raw, not even a blank (a browser would encode it, or drop it); decoded, no control
    // character or backslash (an encoded blank is just a blank in a path).
    let unsafe_decoded = |c: char| c.is_control() || c == '\\';
    let fine = decoded.starts_with('/')
        && !decoded[1..].starts_with('/')
        && !decoded.chars().any(unsafe_decoded)
        && !raw.chars().any(|c| unsafe_decoded(c) || c.is_whitespace());
    if fine { raw } else { "/" }
}

/// `%XX` sequences decoded; `None` when one is malformed or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn secure(headers: &HeaderMap) -> &'static str {
    if crate::net::over_https(headers) { "; Secure" } else { "" }
}

fn set_cookie(name: &str, value: &str, max_age: i64, headers: &HeaderMap) -> (header::HeaderName, HeaderValue) {
    let cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}", secure(headers));
    (header::SET_COOKIE, HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("")))
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"))
}

/// The client's address for throttling and the audit: the peer's, or behind a trusted proxy
/// the one its `X-Forwarded-For` names ([`crate::net::client_address`]).
fn client_address(state: &ApiState, peer: SocketAddr, headers: &HeaderMap) -> String {
    let forwarded: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    crate::net::client_address(peer.ip(), &forwarded, &state.trusted_proxies).to_string()
}

/// `POST /auth/login` (form or JSON fields `name`, `password`, `next`). A new session id every
/// time, so a session planted before sign-in is never the one that becomes signed in. Browsers
/// are redirected (back to the form with the message on failure); JSON clients get JSON.
async fn login(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let address = client_address(&state, peer, &headers);
    let next = safe_next(form.next.as_deref()).to_string();
    let device = cookie(&headers, crate::auth::DEVICE_COOKIE);
    match state.auth.login(form.name.trim(), &form.password, &address, device).await {
        Ok(session) => {
            tracing::info!(user = %session.name, %address, "signed in");
            let mut cookies = vec![set_cookie(session_cookie_name(&headers), session.id.expose_secret(), session.max_age_secs, &headers)];
            if let Some(device) = &session.device {
                cookies.push(set_cookie(crate::auth::DEVICE_COOKIE, device.expose_secret(), crate::auth::DEVICE_LIFE.secs(), &headers));
            }
            let cookies = axum::response::AppendHeaders(cookies);
            if wants_json(&headers) {
                (cookies, Json(serde_json::json!({ "signed_in": session.name }))).into_response()
            } else {
                (cookies, Redirect::to(&next)).into_response()
            }
        }
        Err(error) => {
            if wants_json(&headers) {
                return ApiError(error).into_response();
            }
            // A code, never the error's text: the sign-in page shows only its own sentences.
            let (code, wait) = match &error {
                AppError::Unauthenticated { .. } => ("credentials", None),
                AppError::TooManyRequests { message, retry_after_secs } if message.starts_with(crate::auth::THROTTLED) => {
                    ("throttled", Some(*retry_after_secs))
                }
                AppError::TooManyRequests { .. } => ("busy", None),
                _ => ("failed", None),
            };
            let wait_param = wait.map_or(String::new(), |secs| format!("&wait={secs}"));
            let to = format!("/login?error={code}{wait_param}&next={}", encode_component(&next));
            let mut response = Redirect::to(&to).into_response();
            if let AppError::TooManyRequests { retry_after_secs, .. } = error {
                response.headers_mut().insert(header::RETRY_AFTER, retry_after_secs.into());
            }
            response
        }
    }
}

#[derive(Deserialize)]
pub struct LogoutQuery {
    #[serde(default)]
    everywhere: bool,
}

/// `POST /auth/logout[?everywhere=true]`: ends this session (or every session of the user).
async fn logout(State(state): State<ApiState>, Query(q): Query<LogoutQuery>, headers: HeaderMap) -> Result<Response, ApiError> {
    state.auth.logout(&headers, q.everywhere).await?;
    let clear = set_cookie(session_cookie_name(&headers), "", 0, &headers);
    Ok(([clear], Redirect::to("/login")).into_response())
}

/// `GET /share/{secret}`: a valid share link sets a read-only cookie and opens the status page.
async fn open_share_link(State(state): State<ApiState>, Path(secret): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(rollout_id) = state.auth.share_link_rollout(&secret).await? else {
        return Err(ApiError(AppError::Forbidden { message: "this share link is unknown, expired or revoked".into() }));
    };
    let cookie = set_cookie(SHARE_COOKIE, &secret, 7 * 86_400, &headers);
    Ok(([cookie], Redirect::to(&format!("/status/{rollout_id}"))).into_response())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/rollouts/1")), "/rollouts/1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
        // Security review, issue 19 (3): browsers drop tabs and newlines from a URL, so
        // `/<TAB>/evil.example` left the site; CR LF made the redirect fail with a 500. Every
        // hostile form, raw or percent-encoded, falls back to the home page.
        for hostile in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/%09/evil.example",
            "/%0d%0aSet-Cookie:x=1",
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "/\\evil.example",
            "/%5Cevil.example",
            "/%5c%5cevil.example",
            "/ /evil.example",
            "/\u{7f}/evil.example",
            "/%",
            "/%zz",
            "",
            "rollouts/1",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/", "{hostile:?}");
        }
        for fine in ["/", "/rollouts/1", "/rollouts/1/plan?tab=stages", "/status/1#incidents", "/a%20b"] {
            assert_eq!(safe_next(Some(fine)), fine, "{fine:?}");
        }
    }

    #[test]
    fn cross_site_mutations_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert("host", "rampart.internal:3000".parse().unwrap());
        assert_eq!(same_origin(&h), Err("no Origin or Referer header"));
        h.insert("origin", "http://rampart.internal:3000".parse().unwrap());
        assert_eq!(same_origin(&h), Ok(()));
        h.insert("origin", "https://evil.example".parse().unwrap());
        assert!(same_origin(&h).is_err());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(same_origin(&h).is_err());
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert_eq!(same_origin(&h), Ok(()));
    }
}
