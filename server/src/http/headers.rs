//! Security headers on every response: pages, API answers, refusals and redirects alike.
//!
//! The Content-Security-Policy says: no framing, no plugins, no `<base>` elsewhere, forms posted
//! only here, and scripts only from this site. A page adds the nonce Leptos generated for the
//! response (it carries it on its inline hydration scripts), so no other inline script runs;
//! WebAssembly is compiled from this site's module.

use crate::net::over_https;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::middleware::Next;
use axum::response::Response;

const BASE_POLICY: &str = "frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'";
/// Every response but a rendered page: no inline script at all.
const POLICY: &str = "frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'; script-src 'self' 'wasm-unsafe-eval'";

/// A rendered page's policy: this site's scripts, and the inline ones carrying `nonce`.
pub fn page_policy(nonce: &str) -> String {
    format!("{BASE_POLICY}; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'")
}

/// Called while a page renders (inside Leptos's request context): the response carries the
/// page policy with this render's nonce, which [`security_headers`] then leaves in place.
pub fn set_page_policy() {
    let (Some(nonce), Some(options)) = (leptos::nonce::use_nonce(), leptos::prelude::use_context::<leptos_axum::ResponseOptions>()) else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&page_policy(&nonce)) {
        options.insert_header(CONTENT_SECURITY_POLICY, value);
    }
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
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    }
    if https {
        headers.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}
