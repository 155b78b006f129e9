//! The gate every request passes: find who is calling, refuse cross-site mutations, apply the
//! route's access rule, and send people who are not signed in to the sign-in page.
//!
//! Every `/api/v1`, `/ofrep`, `/auth` and `/share` route must have a rule in [`rule`]; one
//! without is refused for everybody (deny by default). Server functions check their own
//! permission through the same [`app::domain::access::check`].

use super::ApiError;
use crate::auth::{Auth, SHARE_COOKIE, bearer_token, cookie, session_cookie};
use app::domain::access::{Permission, Principal, check};
use app::error::AppError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

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
        ("GET", "/api/v1/rollouts/{id}/test-results" | "/api/v1/rollouts/{id}/test-runs" | "/api/v1/rollouts/{id}/audit") => {
            Needs(ReadRollout)
        }
        ("POST", "/api/v1/rollouts/{id}/test-results" | "/api/v1/rollouts/{id}/test-runs") => Needs(ReportTests),
        ("POST", "/api/v1/rollouts/{id}/complaints") => Needs(ReportComplaints),
        ("GET", "/api/v1/rollouts/{id}/report" | "/api/v1/rollouts/{id}/report/notes") => Needs(ReadRollout),
        ("PUT", "/api/v1/rollouts/{id}/report/notes") => Needs(WriteReport),
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
pub async fn authorize(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
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
        // A page: people sign in first. The status pages and reports also open to a share link
        // and to an API token — a machine cannot sign in, so it is never sent to; the page
        // checks `ReadStatus` itself (a share link's own rollout, a token's `read` scope).
        let path = request.uri().path();
        let status_reader = matches!(principal, Principal::ShareLink { .. } | Principal::Token { .. }) && path.starts_with("/status");
        let is_page = !path.starts_with("/api/");
        if is_page && !matches!(principal, Principal::User { .. }) && !status_reader {
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

pub(super) fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
