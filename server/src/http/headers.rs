//! Security headers on every response: pages, API answers, refusals and redirects alike.
//!
//! The Content-Security-Policy says what holds for every response today — no framing, no
//! plugins, no `<base>` elsewhere, forms posted only here. A `script-src` without
//! `'unsafe-inline'` needs a per-request nonce on Leptos's inline hydration script; it is not
//! set yet (docs/security.md).

use axum::extract::Request;
use axum::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

const POLICY: &str = "frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'";

/// Whether the request came over HTTPS (the proxy in front says so): HSTS here, the session
/// cookie's `Secure` flag in `http::auth`.
pub fn over_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The middleware: adds the headers to whatever the inner service answered; HSTS only when the
/// request came over HTTPS (as the session cookie's `Secure` flag is decided).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let https = over_https(request.headers());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    if https {
        headers.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}
