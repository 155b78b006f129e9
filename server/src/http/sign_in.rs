//! The browser-facing entries: the sign-in and sign-out forms (with their throttle, and the
//! device cookie of a browser that signed in before), the `/share/{secret}` entry of share
//! links, and the one-time set-password pages.

use super::auth::encode_component;
use super::{ApiError, ApiState};
use crate::auth::{SHARE_COOKIE, cookie, session_cookie_name};
use app::error::AppError;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::net::SocketAddr;

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
    let device = cookie(&headers, crate::auth::device_cookie_name(&headers));
    match state.auth.login(form.name.trim(), &form.password, &address, device).await {
        Ok(session) => {
            tracing::info!(user = %session.name, %address, "signed in");
            let mut cookies = vec![set_cookie(session_cookie_name(&headers), session.id.expose_secret(), session.max_age_secs, &headers)];
            if let Some(device) = &session.device {
                cookies.push(set_cookie(
                    crate::auth::device_cookie_name(&headers),
                    device.expose_secret(),
                    crate::auth::DEVICE_LIFE.secs(),
                    &headers,
                ));
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
}
